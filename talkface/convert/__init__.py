"""Converters from other projects' released weights to talkface checkpoints (`talkface convert ...`)."""
