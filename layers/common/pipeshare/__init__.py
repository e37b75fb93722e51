"""pipeshare: hands-off, cost-safe sharing of SageMaker pipelines across AWS accounts through AWS RAM."""

__version__ = "0.1.0"
