"""Large objects: the streaming writer and reader, parallel ranged GETs, faults and retries."""
