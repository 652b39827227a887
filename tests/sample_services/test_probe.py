import sample_services
def test_probe(home):
    print(sample_services.__file__)
