"""3D data: volumes (CT, MRI) and clips, (N, C, D, H, W) uint8 in memory like the 2D sets.

arrays.py     the bundled shapes3d job and MedMNIST-style .npz arrays
folder.py     volumes:DIR, class folders of NIfTI, .npy/.npz or DICOM series
segfolder.py  segfolder:DIR of volumes with mask volumes (3D segmentation)
video.py      video:DIR, class folders of video files or frame folders
sources.py    the folder sources' options checked, each folder decoded once
cache.py      decoded folders kept on disk between runs
"""
