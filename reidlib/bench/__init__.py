"""The benchmarks of ``python -m reidlib bench NAME`` (speed and memory targets).

* :mod:`reidlib.bench.eval` -- ``evaluate_rank`` at Market-1501 size against the slow
  reference loop, on the GPU when there is one, and a chunked 10,000 x 100,000 memory check;
* :mod:`reidlib.bench.synth` -- SynthPeds rendering and writing speed;
* :mod:`reidlib.bench.train` -- CPU smoke train + evaluate time, GPU AMP/channels_last speed-up;
* :mod:`reidlib.bench.match` -- the cost of STNReID's pairwise matching;
* :mod:`reidlib.bench.gpu` -- every GPU path in one short run (``tools/gpu_check.sh``; ``--dry-run``
  runs the same code on the CPU at tiny sizes).

Each module has ``main(argv) -> int``; with ``--json PATH`` it writes the one results schema
(:func:`reidlib.provenance.write_results`: the command, the commit and the hardware in ``meta``,
the measurements in ``results``).  The committed CPU figures are in ``results/bench/``.
"""
