"""Labelled images, read one way for training, evaluation and deployment.

folders.py   image folders: classes from sub-directories, headers checked, sizes probed
arrays.py    datasets that ship as arrays: scikit-learn's digits, CIFAR-10/100 pickles
images.py    ImageDataset (files or arrays, items read by lightnets.preprocess), its loader
splits.py    the train / val splits of a folder, CIFAR or digits; image statistics
"""
