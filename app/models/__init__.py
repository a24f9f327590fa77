"""CatBoost and SVM page classifiers, saved and loaded with metadata."""
