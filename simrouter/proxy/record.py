"""The proxy's per-request record: one row per request that reached the proxy.

A row is (arrival, upstream status, fault kind): ``arrival`` in seconds on the
proxy's clock (since it started), ``status`` the backend's HTTP status (0 when the
request was not forwarded, or the backend never answered: connect error, or the
proxy hung or cut the call before an answer), ``fault`` an index into
``simrouter.faults.KINDS`` (``"none"`` for a request no fault touched), and
whether latency was added. Nothing else is kept: no path, header or body, so no
secret can reach the record.

``per_second()`` counts, per whole second of arrival, requests, forwarded
requests, each fault kind and each upstream status class; ``to_dict(rows=True)``
adds the raw columns (``simrouter live --fault-proxy`` reads them to time the
observed breaker to better than a second).
"""

from __future__ import annotations

from array import array

from ..faults import KINDS


class ProxyRecord:
    """Append-only columns; O(1) per request."""

    def __init__(self) -> None:
        self.arrival = array("d")
        self.status = array("H")
        self.fault = array("b")
        self.delayed = array("b")

    def __len__(self) -> int:
        return len(self.arrival)

    def add(self, arrival: float) -> int:
        """A new row for a request arriving at ``arrival``; returns its index (status and fault set later)."""
        self.arrival.append(arrival)
        self.status.append(0)
        self.fault.append(0)
        self.delayed.append(0)
        return len(self.arrival) - 1

    def set(self, row: int, status: int | None = None, fault: str | None = None, delayed: bool | None = None) -> None:
        if status is not None:
            self.status[row] = status
        if fault is not None:
            self.fault[row] = KINDS.index(fault)
        if delayed is not None:
            self.delayed[row] = int(delayed)

    def per_second(self) -> list[dict]:
        """One entry per second from 0 to the last arrival: ``t`` (second start), counts."""
        if not self.arrival:
            return []
        seconds = int(max(self.arrival)) + 1
        rows = [{"t": float(t), "requests": 0, "forwarded": 0, "faults": dict.fromkeys(KINDS, 0), "status": {}} for t in range(seconds)]
        for arrival, status, fault in zip(self.arrival, self.status, self.fault):
            row = rows[int(arrival)]
            row["requests"] += 1
            row["faults"][KINDS[fault]] += 1
            if KINDS[fault] in ("none", "reset", "cut_stream"):
                row["forwarded"] += 1
            if status:
                key = f"{status // 100}xx"
                row["status"][key] = row["status"].get(key, 0) + 1
        return rows

    def totals(self) -> dict:
        counts = dict.fromkeys(KINDS, 0)
        for fault in self.fault:
            counts[KINDS[fault]] += 1
        return {"requests": len(self), "faults": counts, "delayed": sum(self.delayed)}

    def to_dict(self, rows: bool = False) -> dict:
        data = {"totals": self.totals(), "per_second": self.per_second()}
        if rows:
            data["rows"] = {"arrival_s": list(self.arrival), "status": list(self.status), "fault": [KINDS[f] for f in self.fault], "delayed": [bool(d) for d in self.delayed]}
        return data
