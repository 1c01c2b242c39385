"""Few labels: learning from many images and few labels.

features.py   a backbone's pooled features of a data source's images
episodes.py   N-way K-shot episodes drawn from classes, seeded
classifiers.py  the few-shot classifiers on features (nearest prototypes, SimpleShot, logistic)
fewshot.py    `resnets fewshot`: episodes of novel classes, scored as mean ± 95 % CI
"""
