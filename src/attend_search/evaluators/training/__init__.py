"""Training: data sets and augmentation, the loop both recipes share, short training to
rank candidates (``short``) and the full recipe that trains a winner (``recipe``)."""
