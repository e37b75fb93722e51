"""Operating pipeshare: the `pipeshare consumer ...` and `pipeshare owner ...` commands (dev and ops tooling, outside
the Lambda layer). Targets: a deployed stack (`--profile/--region/--stack`) or the local stack after a scenario
(`--local SCENARIO.yaml`); both read and write through the product's own adapters."""
