"""Whether a retried task of a DataFrame's last stage sees the same rows in the same order.

A message id is `<sink_id>:<checkpoint>:<position>`, the position counted inside the partition,
so a retry drops its duplicates only if it produces the same rows in the same order. Two things
break that, and both are read from the plan before any task starts:

- a non-deterministic expression (rand(), uuid(), shuffle(), a non-deterministic UDF): the rows
  themselves differ on recomputation (Spark's own `deterministic` flag on the optimized plan);
- a shuffle read in the last stage (after a repartition, a join, an aggregation): a retried
  task fetches the map outputs in whatever order they arrive, so its rows come in another
  order, unless a sort sits between the shuffle and the write with nothing but row-by-row
  operators (project, filter) above it. Spark's `sortBeforeRepartition` makes a round-robin
  repartition give each partition the same rows on a retry, not the same order.

A broadcast is read whole by every task, the same on a retry, so it does not count.
"""

from __future__ import annotations

from typing import Any, Optional

_SHUFFLE_READS = {"ShuffleExchangeExec", "ShuffleQueryStageExec", "AQEShuffleReadExec"}
_OTHER_STAGES = {"BroadcastExchangeExec", "BroadcastQueryStageExec", "ReusedExchangeExec",
                 "SubqueryBroadcastExec", "SubqueryExec"}  # fmt: skip
# Operators that pass rows on one by one in the order they come: a sort above them orders the write.
_ROW_BY_ROW = {"ProjectExec", "FilterExec", "WholeStageCodegenExec", "InputAdapter", "ColumnarToRowExec",
               "RowToColumnarExec", "LocalLimitExec", "SerializeFromObjectExec", "DeserializeToObjectExec"}  # fmt: skip


def unstable_order(df: Any) -> Optional[str]:
    """Why a retried task of `df` may give other rows or another order, or None when it cannot."""
    if not hasattr(df, "_jdf"):  # a Spark Connect DataFrame: its plan lives on the server
        return "its plan cannot be read here (a Spark Connect DataFrame)"
    execution = df._jdf.queryExecution()
    if not execution.optimizedPlan().deterministic():
        return "the plan has a non-deterministic expression (rand(), uuid(), shuffle(), a non-deterministic UDF, ...)"
    plan = execution.executedPlan()
    if _name(plan) == "AdaptiveSparkPlanExec":
        plan = plan.inputPlan()  # the plan before adaptive execution replans it: the same exchanges
    shuffle = _unsorted_shuffle(plan, direct=True)
    if shuffle is not None:
        return (f"its last stage reads a shuffle ({shuffle}) with no sort after it, so a retried task may "
                "read its rows in another order; add .sortWithinPartitions(...) on columns that order the rows "
                "completely")  # fmt: skip
    return None


def _name(node: Any) -> str:
    return str(node.getClass().getSimpleName())


def _children(node: Any) -> list[Any]:
    seq = node.children()
    return [seq.apply(i) for i in range(seq.size())]


def _unsorted_shuffle(node: Any, direct: bool) -> Optional[str]:
    """The first shuffle read in this stage not ordered by a sort above it; `direct` while only
    row-by-row operators lie between `node` and the write."""
    name = _name(node)
    if name in _SHUFFLE_READS:
        return str(node.nodeName())
    if name in _OTHER_STAGES:
        return None
    if name == "SortExec" and direct:
        return None  # a sort the rows pass through in order: the write sees its order
    children = _children(node)
    below_direct = direct and name in _ROW_BY_ROW and len(children) == 1
    for child in children:
        found = _unsorted_shuffle(child, below_direct)
        if found is not None:
            return found
    return None
