"""Statistics on stored per-sample predictions: confidence intervals, paired tests, multiple-comparison control,
calibration and subgroups. NumPy/SciPy only: importing this package never imports torch."""
