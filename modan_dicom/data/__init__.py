"""Training data: index rows -> MONAI-cached, decoded, resized uint8 images -> an image bank on the training device.

Modules:

- `targets`: index rows -> multi-hot targets and classes under a profile (`build_targets`).
- `bank`: targets -> the uint8 image bank through MONAI datasets and caches (`build_bank`), undecodable images
  left out and listed (`write_failures`, `check_failures`).
- `decode`: decoding in worker processes, so that a decoder that raises, panics, crashes or hangs costs one image.
- `transforms`: the per-image work (`LoadResized`) and the cache transform (`LoadResizedd`).
- `augment`: batched two-view augmentation on the device (`TwoViewAugment`): RandomResizedCrop, horizontal flip and
  brightness/contrast jitter drawn per sample, computed for the whole batch at once from one seeded generator.

Submodules are imported explicitly (``from modan_dicom.data.augment import TwoViewAugment``) so that importing this
package stays cheap.
"""
