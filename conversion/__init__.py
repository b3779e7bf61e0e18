"""Write side: turns the BigEarthNet.txt release and the BigEarthNet archives into a Hub-ready
data set."""
