"""evosynth: evolutionary synthesis of deep neural networks under synaptic precision restrictions.

The paper's ideas each have a module: ``genetics`` (the synaptic probability model, the 'DNA'),
``environment`` (the environmental factor F(alpha)), ``synthesis`` (sampling an offspring),
``precision`` (the synaptic precision restriction) and ``compaction`` (physically removing clusters).
The detection task lives in ``evosynth.task`` and the study (evolution driver, artifacts, book) in
``evosynth.study``.
"""

__version__ = "0.1.0"
