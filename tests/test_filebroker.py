"""The embedded broker (batchdash/filebroker.py) under the races that crash kombu's own file transport.

Several processes at once, as web, worker and scheduler are: a consumer never reads a message file
half-written, nothing is lost or read twice, and concurrent binds to a new exchange keep every binding.
On kombu 5.7's stock transport the same runs raise JSONDecodeError (celery/kombu#1551).
"""

import multiprocessing
import os

from kombu import Connection

PUBLISHERS, MESSAGES = 3, 400


def connect(folder: str) -> Connection:
    options = {
        "data_folder_in": f"{folder}/queue",
        "data_folder_out": f"{folder}/queue",
        "control_folder": f"{folder}/control",
        "processed_folder": f"{folder}/processed",
    }
    return Connection("filesystem://", transport="batchdash.filebroker:Transport", transport_options=options)


def publish(folder: str, sender: int) -> None:
    with connect(folder) as connection:
        for i in range(MESSAGES):
            connection.default_channel._put("celery", {"sender": sender, "i": i, "padding": "x" * 20_000})


def consume(folder: str, results) -> None:
    got, errors = [], []
    with connect(folder) as connection:
        channel = connection.default_channel
        while len(got) < PUBLISHERS * MESSAGES and len(errors) < 10:
            try:
                message = channel._get("celery")
            except Exception as exc:  # Empty, or the JSONDecodeError this module exists to prevent
                if type(exc).__name__ != "Empty":
                    errors.append(repr(exc))
                continue
            got.append((message["sender"], message["i"]))
            if message["sender"] == -1:
                break
    results.put((got, errors))


def bind(folder: str, rounds: int, barrier) -> None:
    with connect(folder) as connection:
        channel = connection.default_channel
        for r in range(rounds):
            barrier.wait()
            channel._queue_bind(f"exchange{r}", "key", "", f"queue{os.getpid()}")
            channel.get_table(f"exchange{r}")  # raises if it reads a table being written


def test_messages_are_never_read_half_written_lost_or_read_twice(tmp_path):
    folder = str(tmp_path)
    for sub in ("queue", "control", "processed"):
        os.makedirs(f"{folder}/{sub}")
    results = multiprocessing.Queue()
    consumers = [multiprocessing.Process(target=consume, args=(folder, results)) for _ in range(2)]
    publishers = [multiprocessing.Process(target=publish, args=(folder, n)) for n in range(PUBLISHERS)]
    for process in consumers + publishers:
        process.start()
    for process in publishers:
        process.join(60)
    with connect(folder) as connection:  # one stop message per consumer
        for _ in consumers:
            connection.default_channel._put("celery", {"sender": -1, "i": 0})
    outcomes = [results.get(timeout=60) for _ in consumers]
    for process in consumers:
        process.join(10)
    errors = [e for _, errs in outcomes for e in errs]
    got = [m for messages, _ in outcomes for m in messages if m[0] != -1]
    assert errors == []
    assert sorted(got) == [(s, i) for s in range(PUBLISHERS) for i in range(MESSAGES)]
    assert os.listdir(f"{folder}/processed") == []


def test_concurrent_binds_to_new_exchanges_keep_every_binding(tmp_path):
    folder, rounds, binders = str(tmp_path), 100, 4
    barrier = multiprocessing.Barrier(binders)
    processes = [multiprocessing.Process(target=bind, args=(folder, rounds, barrier)) for _ in range(binders)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(60)
    assert [p.exitcode for p in processes] == [0] * binders
    with connect(folder) as connection:
        for r in range(rounds):
            assert len(connection.default_channel.get_table(f"exchange{r}")) == binders
