"""One LightningModule per method."""
from .base import NonFiniteLossError, SSLMethod
from .fixmatch import FixMatch
from .lc_meanteacher import LCMeanTeacher
from .meanteacher import MeanTeacher
from .simmatch import SimMatch
from .supervised import Supervised

__all__ = ["FixMatch", "LCMeanTeacher", "MeanTeacher", "NonFiniteLossError", "SSLMethod", "SimMatch", "Supervised"]
