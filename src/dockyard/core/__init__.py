"""Foundations shared by every layer: errors, configuration, entities, ids."""
