"""mergekit-yaml for Qwen2-VL goldens. mergekit 0.1.5's qwen2_vl definition reads the text decoder's
layer count from the top-level `num_hidden_layers` attribute, which transformers 4's Qwen2VLConfig had
and transformers 5's lacks (it keeps the count in text_config only), so with transformers 5 mergekit
stops with "Config Qwen2VLConfig has no attribute num_hidden_layers". This gives the config that
attribute back, read from text_config, and runs mergekit-yaml unchanged.

    python tools/oracle/mergekit_qwen2vl.py RECIPE OUT [mergekit-yaml options]
"""
import sys

from transformers import Qwen2VLConfig

Qwen2VLConfig.num_hidden_layers = property(lambda self: self.text_config.num_hidden_layers)

from mergekit.scripts.run_yaml import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
