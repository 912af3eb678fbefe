"""The study package: data, training loop, Ray orchestration and the CLI. Keep this file import-free."""
