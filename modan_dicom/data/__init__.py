"""Training data: index rows -> MONAI-cached, decoded, resized uint8 images -> an image bank on the training device.

Modules:

- `augment`: batched two-view augmentation on the device (`TwoViewAugment`): RandomResizedCrop, horizontal flip and
  brightness/contrast jitter drawn per sample, computed for the whole batch at once from one seeded generator.

Submodules are imported explicitly (``from modan_dicom.data.augment import TwoViewAugment``) so that importing this
package stays cheap.
"""
