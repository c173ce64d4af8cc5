"""What is said when and how a mouth shapes it.

phones.py is the phone timeline every source shares; visemes.py articulates phones into jaw, lip
spread and lip round with coarticulation (the synthetic world's mouth, and real speech's guide);
recognition.py hears the phones of real speech (PocketSphinx) and gives their viseme track.
"""
