"""Thin I/O adapters (Kubernetes, SQS, SES/SMTP, S3) behind small interfaces."""
