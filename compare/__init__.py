"""`fmnist compare`: train every engine asked for over several seeds (`runner`, on an executor),
then one side-by-side report of the finished runs (`report` and its parts: the runs, the numbers,
the figures, the text) with the statistics that turn "they look alike" into a claim (`stats`)."""
