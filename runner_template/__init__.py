"""The workflow engine that runs inside the image.

Standard library only, on purpose: every module here is compiled into the image by Nuitka, and
a third-party import (``requests`` and friends) would cost megabytes and start-up time. The build
side (``rules/``) imports these modules too, so reference and template rules exist exactly once.
"""
