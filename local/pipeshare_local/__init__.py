"""pipeshare local stack: moto plus emulation of the AWS APIs moto lacks, built from template.yaml (dev tooling)."""
