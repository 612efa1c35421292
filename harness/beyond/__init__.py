"""Analyses beyond the paper: how healing changes each layer's representations (``analysis``), the
ablations of the corruption (``ablations``), and the gaps against the training budget (``healing_curve``).
"""
