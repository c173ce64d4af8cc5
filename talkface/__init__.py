"""talkface: audio-driven talking-face video with personalized head pose (Yi et al. 2020)."""

__version__ = "0.1.0"
