"""`python -m modan_dicom ...` (also what `torchrun -m modan_dicom pretrain ...` runs)."""

from .cli import main

if __name__ == "__main__":
    main()
