"""DNA-encoded library design with GFlowNets (Koziarski et al., arXiv 2404.10094).

See :mod:`workbench.del_gflownet.core` for the pipeline and its reconstructions.
"""
from workbench.del_gflownet.config import Config
from workbench.del_gflownet.core import run

__all__ = ["Config", "run"]
