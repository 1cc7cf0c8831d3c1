"""The paper's ideas, one module each: ``genetics`` (the synaptic probability model, the 'DNA'), ``environment``
(the environmental factor F(alpha)), ``synthesis`` (sampling an offspring's keep-decisions), ``pruning`` (the
baselines' deciders), ``compaction`` (cutting by those decisions) and ``precision`` (the restriction)."""
