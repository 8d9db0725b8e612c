"""Registration from files: one X-ray, joint views, sequences, tracking, sharding among ranks."""
