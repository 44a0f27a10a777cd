"""Whole-slide images: tissue detection, the tile grid at a target MPP, and a QC picture of both.

Reading pixels (levels, MPP, errors) lives in medprobe.io.slides; everything here works in level-0 coordinates.
"""
