package main

//nestor:web-app size=small replicas=3 image="registry.example.com/checkout:1.4.2" environment=staging

import "net/http"

func main() {
	http.ListenAndServe(":8080", nil)
}
