"""Model-card templates, installed as ``spoco_zoo.model_cards`` (package data; see README.md here)."""
