"""`fmnist convert`: a run carried to another engine, finished or interrupted, with everything a
training holds (`conversion`), and the proofs that it goes on as the original would (`checks`)."""
