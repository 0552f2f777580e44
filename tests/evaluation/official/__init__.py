"""Hard cases scored by the official BraTS 2023 script, and its recorded outputs (expected.json)."""
