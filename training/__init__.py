"""Training stage (torch): datasets, transforms, models, trainer and evaluation.

Never imports ``inference_server``; shared numpy logic lives in ``segloop``.
"""
