"""One LightningModule per method."""
from .base import NonFiniteLossError, SSLMethod
from .fixmatch import FixMatch
from .meanteacher import MeanTeacher
from .supervised import Supervised

__all__ = ["FixMatch", "MeanTeacher", "NonFiniteLossError", "SSLMethod", "Supervised"]
