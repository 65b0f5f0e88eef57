"""Python client for nas, the neural-architecture-search service.

    from nas_client import Client

    client = Client()                      # NAS_SERVER / NAS_TOKEN, else http://127.0.0.1:8080
    search = client.submit("examples/quick.json").wait()
    print(search.leaderboard(top=5).to_pandas())
"""

from .client import DEFAULT_URL, Client, Datasets, load_spec
from .errors import (
    ApiError,
    BadRequestError,
    ConflictError,
    NasConnectionError,
    NasError,
    NotFoundError,
    PayloadTooLargeError,
    ServerError,
    SpecError,
    UnauthorizedError,
)
from .models import (
    Dataset,
    Hypervolume,
    LatencyMs,
    LeaderboardEntry,
    Pareto,
    ParetoPoint,
    Progress,
    Table,
    TestedPoint,
    TrialResult,
    WorkerInfo,
    ZooEntry,
)
from .search import RANK_KEYS, Search
from .spec import Asha, Budget, Evolution, Final, Latency, Objective, RandomSearch, SearchSpec
from .trial import Trial

__version__ = "0.1.0"
"""The client's version."""

__all__ = [
    "ApiError",
    "Asha",
    "BadRequestError",
    "Budget",
    "Client",
    "ConflictError",
    "DEFAULT_URL",
    "Dataset",
    "Datasets",
    "Evolution",
    "Final",
    "Hypervolume",
    "LatencyMs",
    "Latency",
    "LeaderboardEntry",
    "NasConnectionError",
    "NasError",
    "NotFoundError",
    "Objective",
    "Pareto",
    "ParetoPoint",
    "PayloadTooLargeError",
    "Progress",
    "RANK_KEYS",
    "RandomSearch",
    "Search",
    "SearchSpec",
    "ServerError",
    "SpecError",
    "Table",
    "TestedPoint",
    "Trial",
    "TrialResult",
    "UnauthorizedError",
    "WorkerInfo",
    "ZooEntry",
    "load_spec",
]
