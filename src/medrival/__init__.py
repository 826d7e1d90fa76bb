"""medrival: does an efficiently fine-tuned generalist VLM rival a specialist medical VLM?"""
__version__ = "0.1.0"
