"""The R4 `id` datatype: what a logical id may be, in one place."""

from __future__ import annotations

import re
from typing import Final

FHIR_ID: Final = re.compile(r"[A-Za-z0-9\-.]{1,64}")  # use with `fullmatch`
