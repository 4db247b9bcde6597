"""Prints a presigned S3 PUT URL made by boto3 (the AWS SDK for Python).

Usage: presign_s3.py ENDPOINT ACCESS_KEY SECRET_KEY BUCKET KEY
"""
import sys

import boto3
from botocore.config import Config

endpoint, access, secret, bucket, key = sys.argv[1:6]
s3 = boto3.client(
    "s3",
    endpoint_url=endpoint,
    aws_access_key_id=access,
    aws_secret_access_key=secret,
    region_name="us-east-1",
    config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
)
print(s3.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=600))
