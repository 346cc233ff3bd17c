"""One LightningModule per method."""
from .base import NonFiniteLossError, SSLMethod
from .daino import Daino
from .dino import DINO
from .fixmatch import FixMatch
from .lc_meanteacher import LCMeanTeacher
from .meanteacher import MeanTeacher
from .simmatch import SimMatch
from .suave import Suave
from .supervised import Supervised
from .swav import SwAV

__all__ = ["DINO", "Daino", "FixMatch", "LCMeanTeacher", "MeanTeacher", "NonFiniteLossError", "SSLMethod", "SimMatch", "Suave", "Supervised", "SwAV"]
