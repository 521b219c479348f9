"""Representative data for calibration and evaluation, preprocessed exactly as the board does it."""
