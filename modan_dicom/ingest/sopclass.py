"""Which SOP classes hold no image: structured reports, presentation states, key objects, RT
structures / plans / doses, waveforms, encapsulated documents, segmentations, registrations...

Derived from pydicom's UID dictionary rather than a hand-kept list: a storage SOP class is an
image class when its name says "Image" (CT Image Storage, Digital X-Ray Image Storage - For
Presentation, VL Photographic Image Storage, RT Image Storage, ...), plus the few image classes
named otherwise. Private or unknown SOP classes are not judged here (the pixel data decides).
"""

from __future__ import annotations

from functools import lru_cache

from pydicom._uid_dict import UID_dictionary

# image classes whose name lacks the word "Image"
_IMAGE_NAMED_OTHERWISE = frozenset({
    "1.2.840.10008.5.1.4.1.1.6.2",  # Enhanced US Volume Storage
})


@lru_cache(maxsize=1)
def non_image_sop_classes() -> frozenset[str]:
    """UIDs of the known storage SOP classes that carry no image (DICOMDIR included)."""
    found = set()
    for uid, (name, kind, *_rest) in UID_dictionary.items():
        if kind != "SOP Class" or "Storage" not in name or "Commitment" in name:
            continue
        if "Image" in name or uid in _IMAGE_NAMED_OTHERWISE:
            continue
        found.add(uid)
    return frozenset(found)


def is_non_image_sop_class(uid: str | None) -> bool:
    """True for a known non-image storage SOP class (SR, PR, KO, RT plan, waveform, PDF, ...)."""
    return bool(uid) and uid in non_image_sop_classes()
