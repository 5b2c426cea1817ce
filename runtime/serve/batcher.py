"""Concurrent requests for one package, gathered into decoder batches by worker threads.

Two policies behind one interface (`Batcher.submit` -> a Future of the request's results):
- `StaticBatches` (the default): the first waiting request opens a batch, which takes whatever else
  arrives within a short wait, up to a number of sentences, longest-waiting first; the batch is
  decoded to the end, then its worker gathers the next.
- `ContinuousBatches` (--continuous, beam search): each worker keeps one running batch and takes
  waiting requests into it between decoder steps.

Because a sentence's translation does not depend on what it is batched with (see
Translator.translate_ids), every answer equals translating that request alone.
"""

from __future__ import annotations

import collections
import concurrent.futures
import queue
import threading
import time
from dataclasses import dataclass, field

from ..continuous import supports_rows_at_different_steps
from ..translator import Translator
from .settings import CONTINUOUS_SENTENCES, STATIC_SENTENCES, Settings


@dataclass
class _Job:
    texts: list[str]
    options: dict
    future: concurrent.futures.Future

    @property
    def key(self) -> tuple:
        return tuple(sorted(self.options.items()))


class Batcher:
    """Worker threads for one package that turn waiting requests into decoder batches.

    submit() queues (texts, options) and returns a Future of their TranslationResults. Jobs with
    the same options are batched together; jobs with other options wait for a later batch, first
    in line. A batch waits for more jobs only while requests are on their way (announced by the
    server as they are parsed), so a lone client pays no wait. With batching off, each job is
    translated alone.

    `settings.workers` batches are decoded at once (each on `--threads` intra-op threads): one
    worker gathers the next batch while the others decode theirs. A batch takes only its worker's
    share of the requests in play (being decoded, waiting, arriving): with N workers, 1/N of them
    (see has_share). Otherwise the worker that is free when a crowd of answered clients sends again
    takes them all, and the clients split into a large group and a small one that keep their sizes
    (measured before this rule: 32 clients, beam 4, two workers: 30 batches of 4 requests against
    5 of 28). Answers do not depend on how requests were grouped (batch invariance).
    """

    def __init__(self, translator: Translator, settings: Settings):
        self.translator = translator
        self.wait = settings.batch_wait_ms / 1000 if settings.batching else 0.0
        self.continuous = (
            settings.batching
            and settings.continuous
            and supports_rows_at_different_steps(translator.model)
        )
        # A running batch of 32 sentences (128 beam rows) measured slower than 16 (64 clients: 69 vs
        # 92 requests/s), while static batches of 32 do well.
        most = settings.max_batch_sentences or (
            CONTINUOUS_SENTENCES if self.continuous else STATIC_SENTENCES
        )
        self.max_sentences = most if settings.batching else 1  # gathered per batch
        self.decoder_batch = most  # sentences per decoder batch, either way
        self.workers = settings.workers
        self.queue: queue.Queue[_Job | None] = queue.Queue()  # None: close()
        self.held: collections.deque[_Job] = collections.deque()  # skipped: ahead of the queue
        self.batches = 0
        self.jobs = 0  # requests translated (jobs / batches = the mean batch)
        self.stopping = False
        self.gathering = threading.Lock()  # one worker gathers at a time
        self._arriving = 0  # requests announced, not yet submitted
        self._decoding = 0  # requests in the batches being translated now
        self._lock = threading.Lock()
        policy = ContinuousBatches(self) if self.continuous else StaticBatches(self)
        self.threads = [
            threading.Thread(target=policy.work, name=f"traductor-batcher-{i}", daemon=True)
            for i in range(self.workers)
        ]
        for t in self.threads:
            t.start()

    # -- the interface -----------------------------------------------------------------------------

    def announce(self, n: int = 1) -> None:
        """A request for this package is being read (n=-1: it will not come after all)."""
        with self._lock:
            self._arriving += n

    def submit(
        self, texts: list[str], options: dict, announced: bool = False
    ) -> concurrent.futures.Future:
        job = _Job(texts, options, concurrent.futures.Future())
        if announced:  # no longer arriving before it is queued: never counted twice in play
            self.announce(-1)
        self.queue.put(job)
        return job.future

    def close(self) -> None:
        """Finish every queued job, then stop the workers."""
        self.queue.put(None)
        for t in self.threads:
            t.join()

    # -- what the policies share -------------------------------------------------------------------

    def next_job(self, timeout: float | None) -> _Job | None | bool:
        """The next job (held ones first); None for close(); False when none came within timeout."""
        if self.held:
            return self.held.popleft()
        try:
            if timeout is None or timeout > 0:
                return self.queue.get(timeout=timeout)
            return self.queue.get_nowait()
        except queue.Empty:
            return False

    def requests_coming(self) -> bool:
        """Whether a request is announced, queued or held: worth waiting for."""
        return self._arriving > 0 or not self.queue.empty() or bool(self.held)

    def has_share(self, taken: int, uncounted: int = 0) -> bool:
        """Whether a worker that has taken `taken` requests holds its share of those in play:
        1/workers of the ones decoding, queued, held or arriving, plus `uncounted` gathered ones
        not yet counted as decoding. Always False with one worker."""
        if self.workers == 1 or taken == 0:
            return False
        in_play = (
            self._decoding
            + uncounted
            + self.queue.qsize()
            + len(self.held)
            + max(self._arriving, 0)
        )
        return taken >= -(-in_play // self.workers)

    def start_decoding(self, n: int) -> None:
        """n jobs leave the line: counted as decoding before the next worker gathers."""
        with self._lock:
            self._decoding += n
            self.jobs += n

    def count_batch(self) -> None:
        with self._lock:
            self.batches += 1

    def decode(self, batch: list[_Job]) -> None:
        """Translate a static batch and answer each of its jobs (an error answers all of them)."""
        texts = [t for job in batch for t in job.texts]
        try:
            results = self.translator.translate_batch(
                texts, **batch[0].options, batch_size=self.decoder_batch
            )
        except Exception as e:  # handed to every waiting request; the worker lives on
            for job in batch:
                job.future.set_exception(e)
            return
        finally:
            self.done_decoding(len(batch))
        self.count_batch()
        start = 0
        for job in batch:
            job.future.set_result(results[start : start + len(job.texts)])
            start += len(job.texts)

    def done_decoding(self, n: int) -> None:
        with self._lock:
            self._decoding -= n


class StaticBatches:
    """Each worker gathers a batch, decodes it to the end, answers it, and gathers the next.

    A batch starts with the longest-waiting job, then for up to `wait` seconds (or until
    `max_sentences`, or its worker's share) adds jobs with the same options."""

    def __init__(self, batcher: Batcher):
        self.b = batcher
        self.last_jobs = 0  # requests in the batch gathered last, by any worker

    def work(self) -> None:
        while True:
            with self.b.gathering:
                batch = self.gather()
            if batch is None:
                return
            self.b.decode(batch)

    def gather(self) -> list[_Job] | None:
        """The next batch; None once closing and nothing is left."""
        first = self._first()
        if first is None:
            return None
        batch = self._fill(first)
        self.last_jobs = len(batch)
        self.b.start_decoding(len(batch))
        return batch

    def _first(self) -> _Job | None:
        b = self.b
        if not b.stopping:
            first = b.next_job(None)
            if first is not None:
                return first
            b.stopping = True  # close(): the queue holds nothing newer
        return b.held.popleft() if b.held else None

    def _fill(self, first: _Job) -> list[_Job]:
        """`first` and the jobs that join it; the ones skipped go back first in line."""
        b = self.b
        batch, sentences = [first], len(first.texts)
        most = max(b.max_sentences, len(first.texts))
        deadline = time.perf_counter() + b.wait
        skipped: list[_Job] = []
        while sentences < b.max_sentences and not b.stopping:
            if b.has_share(len(batch), uncounted=len(batch)):
                break
            # Under load (the last batch gathered several requests) clients answered a moment ago
            # are about to send again: wait for them. A lone client does not wait.
            waiting = b.requests_coming() or self.last_jobs > 1
            job = b.next_job(deadline - time.perf_counter() if waiting else 0)
            if job is False:
                break
            if job is None:
                b.stopping = True
                break
            if job.key != first.key or sentences + len(job.texts) > most:
                skipped.append(job)  # next batch, ahead of newer arrivals
                continue
            batch.append(job)
            sentences += len(job.texts)
        b.held.extendleft(reversed(skipped))
        return batch


@dataclass
class _Running:
    """A job in a running batch."""

    job: _Job
    plan: object  # Translator.plan(): its sources, limits, and results(hyps)
    hyps: dict = field(default_factory=dict)  # sentence index -> its finished hypotheses
    left: int = 0  # sentences still decoding


@dataclass
class _Batch:
    """One worker's running batch."""

    engine: object = None  # ContinuousBeams for `key`
    key: tuple | None = None
    running: dict[int, _Running] = field(default_factory=dict)  # id(job) -> its state
    sentences: int = 0  # sentences running


class ContinuousBatches:
    """A worker keeps one running beam-search batch (runtime.continuous): between decoder steps
    it takes waiting requests into it, up to `max_sentences` running sentences and its share of
    the requests in play, so a request starts at the next step instead of waiting for a batch to
    finish, and the batch does not thin out as its sentences finish. Requests with options it
    cannot run that way (greedy, alignments) are translated as a batch of their own; requests with
    other beam options wait until the running batch has drained."""

    def __init__(self, batcher: Batcher):
        self.b = batcher

    def work(self) -> None:
        batch = _Batch()
        while self._take_waiting(batch):
            if batch.running:
                self._step(batch)

    def _take_waiting(self, batch: _Batch) -> bool:
        """Admit waiting requests into the batch; False once closing with nothing left."""
        idle = not batch.running
        gathering = self.b.gathering
        if not gathering.acquire(blocking=idle):  # never stall the running batch for the lock
            return True
        try:
            admitted = self._admit(batch, block=idle)
        finally:
            gathering.release()
        if admitted is None:
            return False
        if admitted and admitted[0][1] is not None:
            self.b.count_batch()  # admissions: jobs / batches is the mean number admitted at once
        for job, plan in admitted:
            self._start(batch, job, plan)
        return True

    def _admit(self, batch: _Batch, block: bool) -> list | None:
        """Waiting jobs for this worker's running batch -> [(job, plan)]; None once closing with
        nothing left. A job it cannot run continuously comes alone, as [(job, None)], once the
        running batch is empty."""
        b = self.b
        admitted: list = []
        sentences = batch.sentences
        while True:
            if b.stopping and not b.held and b.queue.empty():
                return None if not batch.running and not admitted else admitted
            if sentences >= b.max_sentences or b.has_share(len(batch.running) + len(admitted)):
                return admitted
            job = b.next_job(None if block and not admitted and not b.stopping else 0)
            if job is False:
                return admitted
            if job is None:  # close(): finish what is queued and running
                b.stopping = True
                continue
            try:
                plan = b.translator.plan(job.texts, **job.options)
            except Exception as e:  # noqa: BLE001 - a bad request fails alone
                job.future.set_exception(e)
                continue
            busy = bool(batch.running or admitted)
            if plan.options.beam_size == 1 or plan.options.return_alignments:
                if busy:  # a batch of its own once this one has drained
                    b.held.appendleft(job)
                    return admitted
                b.start_decoding(1)
                return [(job, None)]
            key = admitted[0][0].key if admitted else batch.key
            if busy and (job.key != key or sentences + len(plan.sources) > b.max_sentences):
                b.held.appendleft(job)  # other beam options, or too many: after this batch
                return admitted
            b.start_decoding(1)
            admitted.append((job, plan))
            sentences += len(plan.sources)

    def _start(self, batch: _Batch, job: _Job, plan) -> None:
        """Add an admitted job's sentences to the running batch (plan None: decode it alone)."""
        if plan is None:  # options this batch cannot run: translated alone, at once
            self.b.decode([job])
            return
        if job.key != batch.key or batch.engine is None:
            batch.key, batch.engine = job.key, self.b.translator.continuous_beams(**job.options)
        items = [
            ((id(job), i), src, limit)
            for i, (src, limit) in enumerate(zip(plan.sources, plan.limits))
        ]
        batch.running[id(job)] = _Running(job, plan, left=len(items))
        batch.sentences += len(items)
        if not items:
            self._finish(batch.running.pop(id(job)))
            return
        try:
            batch.engine.add(items)
        except Exception as e:  # noqa: BLE001 - handed to the request; the worker lives on
            batch.sentences -= len(items)
            self._finish(batch.running.pop(id(job)), e)

    def _step(self, batch: _Batch) -> None:
        """One decoder step; the jobs whose last sentence finished are answered."""
        try:
            done = batch.engine.step()
        except Exception as e:  # noqa: BLE001 - every running request gets it; the worker lives on
            for entry in batch.running.values():
                self._finish(entry, e)
            batch.running.clear()
            batch.sentences, batch.engine = 0, None
            return
        for (job_id, i), hyps in done:
            entry = batch.running[job_id]
            entry.hyps[i] = hyps
            entry.left -= 1
            batch.sentences -= 1
            if entry.left == 0:
                self._finish(batch.running.pop(job_id))

    def _finish(self, entry: _Running, error: Exception | None = None) -> None:
        self.b.done_decoding(1)
        if error is not None:
            entry.job.future.set_exception(error)
            return
        try:
            entry.job.future.set_result(entry.plan.results(entry.hyps))
        except Exception as e:  # noqa: BLE001
            entry.job.future.set_exception(e)
