"""MultiFusion Studio: the entry point for Hugging Face Spaces and `python app.py` (loads the model once)."""

from ui.launch import launch

if __name__ == "__main__":
    launch()
