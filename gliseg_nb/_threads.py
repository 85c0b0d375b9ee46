"""Running one function over many cases in worker threads, with a progress bar.

The cache builder and the synthetic-data generator both spend their time in NumPy, SciPy
and zlib loops that release the GIL, so threads run in parallel without the start-up cost
of processes (which would also re-import the caller's script).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor, as_completed


def map_in_threads(function, items, workers, bar=None, name="gliseg"):
    """``[function(item) for item in items]``, `workers` items at a time, in item order.

    Parameters
    ----------
    function : callable
        Called once per item, from worker threads; must not share mutable state.
    items : sequence
    workers : int
        Threads; 1 (or fewer) runs the items one after the other in this thread.
    bar : tqdm.tqdm, optional
        Advanced by one per finished item. Default=None: no progress bar.
    name : str, default="gliseg"
        Prefix of the worker threads' names.

    Returns
    -------
    list
        The results, in the order of `items`.

    Notes
    -----
    After an error (or Ctrl-C) no further item is started; items already running finish,
    then the exception is raised.
    """
    items = list(items)
    results = [None] * len(items)
    if workers <= 1:
        for index, item in enumerate(items):
            results[index] = function(item)
            if bar is not None:
                bar.update()
        return results
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name)
    try:
        futures = {pool.submit(function, item): index for index, item in enumerate(items)}
        for future in as_completed(futures):
            results[futures[future]] = future.result()
            if bar is not None:
                bar.update()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return results
