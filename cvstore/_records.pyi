from collections.abc import Iterable
from typing import Any

from cvstore.versions import Record

def record(version: int, value: Any) -> Record: ...
def records(version: int, values: Iterable[Any]) -> list[Record]: ...
