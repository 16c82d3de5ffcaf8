"""Checkpoints in an S3 bucket (or an S3-compatible store) through Optuna's ``Boto3ArtifactStore``.

``--artifacts s3://BUCKET[/PREFIX]`` (or ``$HPO_ARTIFACTS``): nothing is imported or contacted
until the first checkpoint is written or read, so a command that never checkpoints runs
without boto3 or credentials. boto3 finds the credentials and the endpoint as it always does
(``AWS_PROFILE``, ``AWS_ACCESS_KEY_ID``, ``AWS_ENDPOINT_URL`` for MinIO and the like, an
instance role).
"""

from __future__ import annotations

from typing import Any, BinaryIO

from hpo.errors import HpoError

PREFIX = "s3://"


class S3Store:
    """An Optuna artifact store under ``s3://BUCKET[/PREFIX]``; the client is made at first use.

    Args:
        url: ``s3://BUCKET`` or ``s3://BUCKET/PREFIX`` (artifacts are ``PREFIX/<artifact id>``).
    """

    def __init__(self, url: str) -> None:
        bucket, _, prefix = url[len(PREFIX):].partition("/")
        if not bucket:
            raise HpoError(f"--artifacts {url}: no bucket (fix: s3://BUCKET/PREFIX)")
        self.url, self.bucket, self.prefix = url, bucket, prefix.strip("/")
        self._store: Any = None

    def key(self, artifact_id: str) -> str:
        return f"{self.prefix}/{artifact_id}" if self.prefix else artifact_id

    def _inner(self) -> Any:
        if self._store is None:
            try:
                import boto3
            except ImportError:
                raise HpoError(f"--artifacts {self.url}: needs boto3 (fix: pip install -e \".[s3]\")") from None
            from optuna.artifacts import Boto3ArtifactStore

            self._store = Boto3ArtifactStore(self.bucket, client=boto3.client("s3"))
        return self._store

    def open_reader(self, artifact_id: str) -> BinaryIO:
        return self._inner().open_reader(self.key(artifact_id))

    def write(self, artifact_id: str, content_body: BinaryIO) -> None:
        self._inner().write(self.key(artifact_id), content_body)

    def remove(self, artifact_id: str) -> None:
        self._inner().remove(self.key(artifact_id))
