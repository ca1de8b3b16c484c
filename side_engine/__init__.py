"""SIDE Inspector engine: audits unconditional diffusion models for memorized training images.

Headless and Qt-free: stages report through plain dataclass events (events.py) and honour a cancel flag.
"""

__version__ = "0.1.0"
