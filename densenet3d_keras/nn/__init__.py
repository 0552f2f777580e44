"""Keras layers of the network (dense blocks, taps, the hierarchical head) and their tensor ops."""
