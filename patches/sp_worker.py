"""Entry point of a sequence-parallel worker process (rank >= 1), started by ``sp_pool.WorkerPool``.

Run as a script: ``python sp_worker.py HOST PORT RANK WORLD``. It reads its bootstrap from rank 0's
TCPStore, sets ComfyUI's command-line settings as the server had them (device choice, attention
backend), imports this pack under the package name ComfyUI gave it (so pickled patch objects such as
Monarch attention resolve to the same classes), then serves until rank 0 says stop. A watchdog
thread exits the process when rank 0's process is gone, so no worker outlives the server.
"""

import importlib
import importlib.util
import os
import pickle
import sys
import threading
import time

WATCHDOG_PERIOD_S = 1.0


def _watch_parent(parent_pid: int) -> None:
    while True:
        time.sleep(WATCHDOG_PERIOD_S)
        if os.getppid() != parent_pid:
            os._exit(3)


def _load_pack(name: str, root: str):
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(
        name, os.path.join(root, "__init__.py"), submodule_search_locations=[root]
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def main(host: str, port: int, rank: int, world: int) -> None:
    import torch
    import torch.distributed as dist

    store = dist.TCPStore(host, port, world, False)
    boot = pickle.loads(store.get("rtv_sp/bootstrap"))  # plain types only: nothing is importable yet
    threading.Thread(target=_watch_parent, args=(boot["parent_pid"],), daemon=True).start()
    torch.set_num_threads(boot["threads"])
    sys.path.insert(0, boot["comfy_dir"])
    import comfy.cli_args

    vars(comfy.cli_args.args).update(pickle.loads(boot["comfy_args"]))
    pack = _load_pack(boot["pack_name"], boot["pack_root"])
    pool = importlib.import_module(f"{pack.__name__}.patches.sp_pool")
    try:
        pool.serve(store, rank, pool.Bootstrap(**boot))
    except BaseException:
        pool.report_worker_error(store, rank)
        os._exit(1)
    os._exit(0)  # nothing left to clean up: skip the interpreter's slow teardown of torch


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
