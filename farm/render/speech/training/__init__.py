"""Training data and training for the viseme model (``farm train visemes``).

Speech comes from espeak-ng with exact phoneme timings (``farm.infra.espeak``), texts from the
Debian SCOWL word lists (``texts``), voices from espeak's accents and variants (``voices``); the
audio is augmented with noise and synthetic room reverb (``augment``) and labelled per 40 ms frame
(``labels``). ``trainer`` (torch, CPU) fits the model and writes the numpy weights the farm ships.
"""
