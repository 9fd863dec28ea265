"""Reconstruction networks: pure nn.Modules mapping a window of frames to one HDR frame.

Contract shared by every model: ``forward(ldr, times)`` with ldr (B, n, 3, H, W) gamma-2.2 R'G'B'
in [0, 1] and times (B, n) relative exposures (shortest = 1), returning (B, 3, H, W) linear HDR
of the centre frame, 1.0 = the clipping point of the shortest exposure.
"""
